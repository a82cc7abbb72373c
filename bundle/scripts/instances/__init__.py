"""Individual vertebrae: the two-step heatmap + iterative-memory method (Serrador et al., CMIG 2024).

* :mod:`.levels` - VerSe ids in anatomical order and their names.
* :mod:`.heatmap` - step 1 targets: Gaussians at vertebra centroids on the 64x64x128 grid.
* :mod:`.sampling` - step 2 training samples: CT patch + memory of the vertebrae above + the next vertebra.
* :mod:`.losses` - the boundary-weighted FP/FN loss and its ramp, the heatmap loss, and the distillation losses.
* :mod:`.walk` - inference: walk the spine from the top of the heatmap, one vertebra at a time.
* :mod:`.naming` - anatomical names for the detected sequence.
* :mod:`.evaluation` - per-vertebra Dice / Hausdorff, detection and identification rates.
"""
