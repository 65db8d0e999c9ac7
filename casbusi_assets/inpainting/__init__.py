"""Inpainting stage: caliper masks and caliper-free copies (`inpainted_images`).

Modules: `masks` (caliper boxes refined to strokes and measurement lines), `methods` (the
Inpainter interface: OpenCV Navier-Stokes / Telea and the learned network), `model` (the
plain-torch gated U-Net), `batch` (one batch's files and rows), `pairs` (caliper captures with
their clean pixels from the generator, for training, tests and the benchmark), `quality` (window
MAE against clean pixels); `assets`, `checks`, `resources` are the Dagster side.
"""
