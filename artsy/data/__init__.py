"""Datasets, class order, task splits and transforms for class-incremental learning.

Every dataset is read into one shape, a `DataSource` (`images`): `train` and `test` image sets
whose items are (PIL RGB image, ORIGINAL class id), loaded lazily. `TaskData` (`tasks`) applies
the class order (`order`, which also checks an explicit data.class_order) and the task split on
top and hands out torch Datasets with remapped labels (docs/method.md §11). Each dataset is one
module (`cifar`, `tinyimagenet`, `folders`, `synthetic`, `digits`) that reads the official on-disk
layout and declares a `DatasetSpec` (`spec`): its name, sizes, config keys and checks; `registry`
maps `data.name` to it. Every missing or malformed input is a one-line `DataError` that names what
was expected where, and how to get it.
"""

from importlib import import_module

# Public names and their modules, imported on first use (PEP 562): artsy.config validates
# data.name through the registry, and that must not import torch and torchvision.
_EXPORTS = {
    "images": ("ArrayImageSet", "DataSource", "FileImageSet", "ImageSet"),
    "spec": ("DatasetSpec",),
    "registry": ("DATASETS", "check_data_config", "dataset_shape", "dataset_spec", "load_source"),
    "order": ("class_order",),
    "tasks": ("TaskData", "TaskSubset", "remap_labels", "task_data_from_config", "task_splits"),
    "transforms": ("ease_transforms", "eval_transform", "train_transform"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
