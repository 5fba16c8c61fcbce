"""The fully convolutional network (FCN) for mineral segmentation: architectures, model files, inference.

Public API::

    from ml_backend.fcn import FCNConfig, FCNSegmenter, save_fcn, load_fcn, shipped_model_path

    config = FCNConfig.for_architecture("unet-resnet18", catalogue.names)
    save_fcn("model.safetensors", config.build().state_dict(), config)   # + model.json
    segmenter = FCNSegmenter(catalogue, "model.safetensors", threads=0)
    probabilities = segmenter.predict_proba(image)                       # (C, H, W) float32
"""

from ml_backend.fcn.architectures import Architecture, architecture_names, create_network, get_architecture
from ml_backend.fcn.model_config import FCNConfig, network_input
from ml_backend.fcn.model_files import LoadedModel, load_fcn, save_fcn, shipped_model_path
from ml_backend.fcn.segmenter import FCNPredictor, FCNSegmenter, resolve_device, segment_array_tiles

__all__ = [
    "Architecture", "FCNConfig", "FCNPredictor", "FCNSegmenter", "LoadedModel", "architecture_names",
    "create_network", "get_architecture", "load_fcn", "network_input", "resolve_device", "save_fcn",
    "segment_array_tiles", "shipped_model_path",
]  # fmt: skip
