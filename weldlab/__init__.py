"""weldlab: out-of-distribution detection for industrial X-ray weld inspection.

A thin library behind an executable book that reproduces Lindgren & Zach (2022),
*Industrial X-ray Image Analysis with Deep Neural Networks Robust to Unexpected Input
Data*, Metals 12(11) 1963. One module per stage of the data flow:

``radiographs`` (GDXray and image files) -> ``simulate`` (the embedded weld simulator) ->
``calibration`` (statistics compared between the two) -> ``patches`` (rotated patches,
augmentation, contrast classes) -> ``perturbations`` (D, SNI, synthetic indications) ->
``datasets`` (building, storing and loading the patch datasets) -> ``book`` (running
the chapters) and ``cli`` (the ``weldlab`` command).
"""

import os as _os

__version__ = "0.1.0"

# TensorFlow uses its oneDNN kernels by default only on CPUs with AVX-512 VNNI/BF16 or AMX
# instructions; elsewhere (an AVX2-only CPU such as the 2-core EPYC weldlab is developed on)
# it falls back to Eigen's. Measured there (scripts/bench_step.py, the AE training step, 16
# pairs): 1.47 s with oneDNN, 3.04 s without. The setting only counts if it is made before
# TensorFlow is imported, hence here; one made by the user is kept.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
