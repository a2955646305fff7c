"""Class activation maps (CAM, Grad-CAM and kin) for fastai, from one get_preds pass

Modules:

- `fastcam.metrics`: How good is a map? Localization (pointing games) against boxes or masks, and faithfulness (deletion, insertion, average drop) against the model itself; plus Score-CAM and a side-by-side report of all methods."""

__version__ = "0.0.1"
