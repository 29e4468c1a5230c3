"""SyMat (Luo, Liu & Ji, NeurIPS 2023) as an xtalbench plugin: symmetry-aware crystal generation."""
