"""Dataset fixtures in the official on-disk layouts, shared by the tests of several modules."""

import pytest

from .cifar_fixtures import write_cifar10, write_cifar100
from .folder_fixtures import write_image_folder, write_tiny


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """(root, arrays) of a CIFAR-100 fixture: 3 train and 2 test images per class."""
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar100(root)


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    """(root, arrays) of a CIFAR-10 fixture: 2 per class in each of the 5 train batches, 3 test."""
    root = tmp_path_factory.mktemp("cifar10")
    return root, write_cifar10(root, per_batch=2, n_test=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "tree")
