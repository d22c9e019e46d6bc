"""Trained models as files for deployment: ONNX and TorchScript (``tlcli export``), and those files run
back by ``tlcli predict`` / ``tlcli evaluate``.

- ``spec.py``: :class:`Exportable`, what a predictor's ``export_module()`` hands over (the module, an
  example input, labels, preprocessing), and the metadata written with every file;
- ``convert.py``: the module to ONNX bytes (torch.onnx, TorchScript-based exporter) or TorchScript bytes,
  and the check that the file computes what torch computes;
- ``files.py``: where the files go and the rule that nothing tlcli did not write is ever replaced;
- ``runtime.py``: an exported file as a predictor (ONNX Runtime or TorchScript), preprocessing from its
  metadata.
"""
