"""The hooks a plugin implements. Every hook name starts with ``xtalbench_``.

A plugin is a module (or object) named by an entry point in the ``xtalbench`` group::

    [project.entry-points.xtalbench]
    mymodel = "mymodel_pkg.hooks"

whose functions are decorated with :data:`hookimpl`.
"""

from __future__ import annotations

import pluggy

PROJECT = "xtalbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def xtalbench_register_generators(register):
    """Register generators by calling ``register(factory)``.

    ``factory`` is a :class:`harness.generator.GeneratorSpec`: its metadata plus a ``"module:Class"`` path that is
    imported only when the generator is used, so that listing plugins never imports torch.
    """


@hookspec
def xtalbench_register_datasets(register):
    """Register datasets by calling ``register(card)`` with a :class:`harness.datasets.DatasetCard`."""


@hookspec
def xtalbench_register_relaxers(register):
    """Register relaxers by calling ``register(spec)`` with a :class:`harness.relaxer.RelaxerSpec`.

    The spec's ``target`` (a :class:`harness.relaxer.Relaxer` subclass) is imported only when the relaxer is used.
    xtalbench registers its built-ins (CHGNet, the protocol's, and SevenNet-0) through this hook too.
    """
