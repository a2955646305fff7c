"""Class activation maps (CAM, Grad-CAM and kin) for fastai, from one get_preds pass"""

__version__ = "0.0.1"
