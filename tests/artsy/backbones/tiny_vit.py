"""A 2-block ViT at 32 px: the smallest timm backbone the tests build, with random weights."""

from artsy.backbones import build_backbone

TINY = dict(img_size=32, patch_size=4, depth=2, embed_dim=32, num_heads=2)


def tiny(**kw):
    return build_backbone("vit_tiny_patch16_224", pretrained=False, **TINY, **kw)
