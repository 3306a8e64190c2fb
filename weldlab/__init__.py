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

__version__ = "0.1.0"
