"""Where a result came from: code version, packages, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "xtalbench", "torch", "numpy", "scipy", "pandas", "pymatgen", "pyxtal", "spglib", "smact", "matminer",
    "chgnet", "ase", "pluggy",
)
REPO_ROOT = Path(__file__).resolve().parent.parent


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: Path = REPO_ROOT, paths: tuple[str, ...] = ()) -> dict[str, object]:
    """The commit of the checkout the code runs from and whether it has uncommitted changes (tracked files; only
    under ``paths`` when given)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *paths)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def commit_label(root: Path = REPO_ROOT, paths: tuple[str, ...] = ()) -> str:
    """``git_state`` as one string for manifests: the commit, ``+dirty`` when tracked files (under ``paths``) differ
    from it, or ``uncommitted`` outside a git checkout."""
    state = git_state(root, paths)
    if not state["commit"]:
        return "uncommitted"
    return state["commit"] + ("+dirty" if state["dirty"] else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return None


def hardware() -> dict[str, object]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "gpu": gpu_name(),
        "platform": platform.platform(),
    }


def hardware_label(hw: dict) -> str:
    """A short label for tables: 'CPU 2 cores' or the GPU name."""
    if hw.get("gpu"):
        return str(hw["gpu"])
    return f"CPU {hw.get('cores')} cores"


def collect() -> dict[str, object]:
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "hardware": hardware(),
    }
