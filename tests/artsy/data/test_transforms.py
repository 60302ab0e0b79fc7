"""artsy.data.transforms: EASE's train and test transforms, and the normalisation option."""

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from artsy.data import eval_transform, train_transform
from artsy.data.synthetic import load_synthetic


def test_train_transform_is_eases():
    tf = train_transform(32)
    crop, flip, to_tensor = tf.transforms
    assert isinstance(crop, T.RandomResizedCrop) and crop.size == (32, 32)
    assert crop.scale == (0.05, 1.0) and crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert isinstance(flip, T.RandomHorizontalFlip) and isinstance(to_tensor, T.ToTensor)
    x = tf(Image.new("RGB", (50, 40), (255, 128, 0)))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0  # no normalisation (EASE)
    assert x[0].mean() == pytest.approx(1.0) and x[1].mean() == pytest.approx(128 / 255)


@pytest.mark.parametrize("size, resize", [(224, 256), (64, 73)])
def test_test_transform_is_eases(size, resize):
    tf = eval_transform(size)
    r, crop, to_tensor = tf.transforms
    assert isinstance(r, T.Resize) and r.size == resize
    assert r.interpolation == T.InterpolationMode.BICUBIC
    assert isinstance(crop, T.CenterCrop) and crop.size == (size, size)
    assert isinstance(to_tensor, T.ToTensor)
    assert tf(Image.new("RGB", (64, 48))).shape == (3, size, size)


@pytest.mark.parametrize("size", [32, 16])
def test_small_inputs_of_the_input_size_are_not_resized_as_in_pilot(size):
    """PILOT's EASE resizes test images only above 32 px: CIFAR's images go in as they are."""
    img = load_synthetic(n_classes=2, image_size=size).test[0][0]
    torch.testing.assert_close(eval_transform(size)(img), T.ToTensor()(img))
    other = Image.new("RGB", (64, 48), (10, 200, 30))  # another size: resized and cropped as above
    old = T.Compose([T.Resize(int(size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
                     T.CenterCrop(size), T.ToTensor()])
    torch.testing.assert_close(eval_transform(size)(other), old(other))


def test_normalize_option():
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    img = load_synthetic(n_classes=2, image_size=32).train[0][0]
    plain = eval_transform(32)(img)
    normed = eval_transform(32, normalize=(mean, std))(img)
    assert isinstance(eval_transform(32, (mean, std)).transforms[-1], T.Normalize)
    assert isinstance(train_transform(32, (mean, std)).transforms[-1], T.Normalize)
    torch.testing.assert_close(normed, (plain - 0.5) / 0.25)
    with pytest.raises(ValueError, match=r"normalize must be \(mean, std\)"):
        eval_transform(32, normalize=(0.5,))
