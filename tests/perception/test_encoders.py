import pytest
import torch

from perception.encoders import (VisionEncoder, build_vision_encoder, load_vision_encoder,
                                 tiny_config)
from perception.errors import PerceptionError


@pytest.mark.parametrize("family,dim", [("siglip", 32), ("dinov2", 32), ("vit", 32),
                                        ("siglip+dinov2", 64), ("resnet", 32), ("bit", 32),
                                        ("resnet+siglip", 64)])
def test_patch_features_shape(family, dim):
    enc = build_vision_encoder(family, image_size=32, patch_size=8, hidden_size=32, num_layers=1,
                               num_heads=2)
    out = enc(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 16, dim)
    rebuilt = VisionEncoder.from_config_dict(enc.config_dict())
    rebuilt.load_state_dict(enc.state_dict())
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(rebuilt(x), enc(x), atol=1e-6)


@pytest.mark.parametrize("family", ["siglip", "dinov2"])
def test_load_pretrained_from_local_dir(tmp_path, family):
    import transformers

    cls = {"siglip": transformers.SiglipVisionModel, "dinov2": transformers.Dinov2Model}[family]
    torch.manual_seed(0)
    model = cls(tiny_config(family, 32, 8, 32, 1, 2)).eval()
    model.save_pretrained(tmp_path / family)
    enc = load_vision_encoder(tmp_path / family).eval()
    x = torch.rand(1, 3, 32, 32)
    assert enc.backbones[0].family == family
    skip = 0 if family == "siglip" else 1
    mean, std = enc.backbones[0].mean, enc.backbones[0].std
    expected = model(pixel_values=(x - mean) / std).last_hidden_state[:, skip:]
    assert torch.allclose(enc(x), expected, atol=1e-5)


def test_fused_from_two_dirs(tmp_path):
    import transformers

    transformers.SiglipVisionModel(tiny_config("siglip", 32, 8, 32, 1, 2)).save_pretrained(tmp_path / "s")
    transformers.Dinov2Model(tiny_config("dinov2", 32, 8, 48, 1, 2)).save_pretrained(tmp_path / "d")
    enc = load_vision_encoder(f"{tmp_path / 's'}+{tmp_path / 'd'}")
    assert enc(torch.rand(1, 3, 32, 32)).shape == (1, 16, 80)


def test_errors_are_clear(tmp_path):
    with pytest.raises(PerceptionError, match="unknown vision family"):
        build_vision_encoder("vgg")
    with pytest.raises(PerceptionError, match="stride"):
        build_vision_encoder("resnet", 32, 6, 32, 1)
    with pytest.raises(PerceptionError, match="no config.json"):
        load_vision_encoder(tmp_path)
    enc = build_vision_encoder("siglip", 32, 8, 32, 1, 2)
    with pytest.raises(PerceptionError, match="expects 32x32"):
        enc(torch.rand(1, 3, 64, 64))


def test_conv_tokens_follow_the_feature_map_in_row_major_order():
    """A conv backbone's token i is cell (i // w, i % w) of its last feature map: moving a bright
    square from the top-left to the bottom-right changes the first token most, then the last."""
    torch.manual_seed(0)
    enc = build_vision_encoder("resnet", 32, 8, 32, 1).eval()
    a = torch.zeros(1, 3, 32, 32)
    b = a.clone()
    a[..., 1:6, 1:6] = 1.0
    b[..., 26:31, 26:31] = 1.0
    base = enc(torch.zeros(1, 3, 32, 32))
    da = (enc(a) - base).norm(dim=-1)[0]
    db = (enc(b) - base).norm(dim=-1)[0]
    assert int(da.argmax()) == 0 and int(db.argmax()) == 15


@pytest.mark.parametrize("family", ["resnet", "bit"])
def test_load_pretrained_conv_backbone_from_local_dir(tmp_path, family):
    """A pretrained ResNet/BiT directory loads; its config names no input size, so ImageNet's
    224 px gives a 7x7 grid at stride 32 (four stages)."""
    import transformers

    cls = {"resnet": (transformers.ResNetConfig, transformers.ResNetModel),
           "bit": (transformers.BitConfig, transformers.BitModel)}[family]
    config = cls[0](embedding_size=16, hidden_sizes=[16, 16, 32, 32], depths=[1, 1, 1, 1],
                    **({"num_groups": 4} if family == "bit" else {"layer_type": "basic"}))
    torch.manual_seed(0)
    cls[1](config).save_pretrained(tmp_path / family)
    enc = load_vision_encoder(tmp_path / family).eval()
    assert (enc.image_size, enc.patch_size, enc.num_patches, enc.out_dim) == (224, 32, 49, 32)
    out = enc(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 49, 32) and torch.isfinite(out).all()


def _save_as_checkpoint(encoder: VisionEncoder, directory) -> None:
    """The layout a policy's or frame encoder's ``save_pretrained`` writes: config.json with a
    "vision" entry beside other models' entries, and model.safetensors with vision.* weights."""
    import json

    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"vision": encoder.config_dict(),
                                                       "lm": {"model_type": "llama"}}))
    weights = {f"vision.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    save_file({**weights, "projector.weight": torch.zeros(2, 2)}, str(directory / "model.safetensors"))


def test_a_checkpoint_lends_its_vision_tower(tmp_path):
    """Another model can start from the encoder a checkpoint trained (cell positions included);
    tests/policy/test_model.py checks that the policy's checkpoints have this layout."""
    torch.manual_seed(0)
    enc = build_vision_encoder("bit", image_size=32, patch_size=8, hidden_size=32, num_layers=1)
    with torch.no_grad():  # distinctive learned cell positions: they must travel too
        enc.backbones[0].pos_embed.normal_()
    _save_as_checkpoint(enc.eval(), tmp_path / "ckpt")
    loaded = load_vision_encoder(tmp_path / "ckpt").eval()
    x = torch.rand(2, 3, loaded.image_size, loaded.image_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), enc(x))


def test_a_checkpoint_without_vision_weights_is_a_one_line_error(tmp_path):
    from safetensors.torch import load_file, save_file

    ckpt = tmp_path / "ckpt"
    _save_as_checkpoint(build_vision_encoder("resnet", 32, 8, 32, 1), ckpt)
    weights = {k: v for k, v in load_file(str(ckpt / "model.safetensors")).items()
               if not k.startswith("vision.")}
    save_file(weights, str(ckpt / "model.safetensors"))
    with pytest.raises(PerceptionError, match="no complete vision tower"):
        load_vision_encoder(ckpt)
