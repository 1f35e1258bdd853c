"""Tiny random-weight avatar models, saved like the real Hugging Face repos.

The models keep the real families' cross-attention widths (768 for SD 1.5, 1024 for
SD 2.1 / SD-Turbo), so family checks see what they would see on real models, but every
other size is tiny. They are written with ``save_pretrained`` (safetensors) into
``<root>/<owner>/<name>`` exactly where ``avatar-bridge models fetch`` puts the real ones,
and the stage loads them through the same ``from_pretrained`` code users run.

The tokenizer is a CLIP BPE tokenizer built from a small vocabulary written here
(single characters, each also with CLIP's end-of-word ``</w>`` suffix, no merges).
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import torch

BASES = {"sd15": "Lykon/dreamshaper-8", "sd21": "stabilityai/sd-turbo", "sdxl": "stabilityai/sdxl-turbo"}
CONTROLNETS = {"sd15": "lllyasviel/control_v11p_sd15_openpose", "sd21": "thibaud/controlnet-sd21-openpose-diffusers",
               "sdxl": "thibaud/controlnet-openpose-sdxl-1.0"}
#: cross-attention width: the real one for SD 1.5 / 2.1; SDXL is told by its "text_time" embedding, so tiny there
CROSS = {"sd15": 768, "sd21": 1024, "sdxl": 64}
SDXL_TEXT = 32  # each tiny SDXL text encoder's width (the UNet sees both: 64)
SDXL_TIME = 8   # addition_time_embed_dim


def write_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer (vocab.json + merges.txt -> ``CLIPTokenizer.save_pretrained``) in ``folder``."""
    from transformers import CLIPTokenizer

    chars = string.ascii_lowercase + string.digits + ",.!-'"
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>"] + list(chars) + [c + "</w>" for c in chars]:
        vocab[token] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp)
        (raw / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (raw / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        tok = CLIPTokenizer(vocab=str(raw / "vocab.json"), merges=str(raw / "merges.txt"), model_max_length=77)
    tok.save_pretrained(folder)


def _family_kwargs(family: str) -> dict:
    """UNet/ControlNet keyword arguments shared by a family's tiny models."""
    kwargs = {"cross_attention_dim": CROSS[family], "attention_head_dim": 8 if family == "sd15" else (2, 4),
              "use_linear_projection": family != "sd15"}
    if family == "sdxl":
        kwargs.update(addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME,
                      projection_class_embeddings_input_dim=SDXL_TEXT + 6 * SDXL_TIME)
    return kwargs


def _unet(family: str) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=32, **_family_kwargs(family),
    )


def _randomize(module: torch.nn.Module, std: float = 0.05) -> None:
    """Give zero-initialised layers (ControlNet zero convs) random weights so they have an effect."""
    with torch.no_grad():
        for p in module.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(0.0, std)


def build_base(root: Path, family: str, full_vae: bool = True, prediction_type: str = "epsilon") -> Path:
    """A tiny diffusers pipeline folder (model_index.json, unet/, text_encoder(_2)/, tokenizer(_2)/, scheduler/, vae/).

    ``prediction_type`` goes into the scheduler config: ``"v_prediction"`` makes a
    v-prediction model like SD 2.1 768-v (same random weights; the engine reads the config).
    """
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed({"sd15": 0, "sd21": 1, "sdxl": 6}[family])
    folder = root / BASES[family]
    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")

    def text_config(width: int, **extra) -> CLIPTextConfig:
        return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra)

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1, prediction_type=prediction_type)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=CLIPTextModel(text_config(SDXL_TEXT)),
            text_encoder_2=CLIPTextModelWithProjection(text_config(SDXL_TEXT, projection_dim=SDXL_TEXT)),
            tokenizer=tokenizer, tokenizer_2=tokenizer, unet=_unet(family), scheduler=scheduler,
        )
    else:
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(text_config(CROSS[family])), tokenizer=tokenizer,
                                       unet=_unet(family), scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    if not full_vae:
        for f in (folder / "vae").iterdir():
            f.unlink()
        (folder / "vae").rmdir()
    return folder


def build_controlnet(root: Path, family: str) -> Path:
    """A tiny OpenPose-style ControlNet of ``family`` (zero convs randomised)."""
    from diffusers import ControlNetModel

    torch.manual_seed(2)
    net = ControlNetModel(
        in_channels=4, layers_per_block=1, block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        norm_num_groups=32, conditioning_embedding_out_channels=(8, 8, 8, 8), **_family_kwargs(family),
    )
    _randomize(net)
    with torch.no_grad():  # keep the pose image's signal alive through the conditioning convs
        for conv in net.controlnet_cond_embedding.modules():
            if isinstance(conv, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(conv.weight)
                conv.bias.zero_()
    folder = root / CONTROLNETS[family]
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def build_taesd(root: Path, name: str = "taesd") -> Path:
    """A tiny ``AutoencoderTiny`` where madebyollin/taesd (or taesdxl) goes."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(3)
    vae = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                          num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4)
    with torch.no_grad():  # variance-keeping init so the input image still shows in the latents
        for conv in vae.modules():
            if isinstance(conv, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    folder = root / "madebyollin" / name
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


def build_lcm_lora(root: Path) -> Path:
    """A random rank-4 LoRA for the tiny SD 1.5 UNet, saved like latent-consistency/lcm-lora-sdv1-5."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(4)
    unet = _unet("sd15")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False))
    folder = root / "latent-consistency" / "lcm-lora-sdv1-5"
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                              weight_name="pytorch_lora_weights.safetensors", safe_serialization=True)
    return folder


def build_ip_adapter(root: Path, family: str = "sd15", image_embed_dim: int = 32) -> Path:
    """A tiny IP-Adapter laid out like h94/IP-Adapter: models/ip-adapter_sd15.safetensors + models/image_encoder/."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(5)
    cross = CROSS[family]
    folder = root / "h94" / "IP-Adapter" / "models"
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=image_embed_dim, num_hidden_layers=1, num_attention_heads=4,
        image_size=32, patch_size=8,
    ))
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    tensors = {
        "image_proj.proj.weight": torch.randn(4 * cross, image_embed_dim) * 0.05,
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    unet = _unet(family)
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            attn = unet.get_submodule(name.removesuffix(".processor"))
            hidden = attn.to_k.out_features
            tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.05
            tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.05
            key_id += 2
    save_file(tensors, str(folder / "ip-adapter_sd15.safetensors"))
    return folder.parent


def build_all(root: Path, sdxl: bool = False) -> Path:
    """Every tiny model the avatar tests use, under ``root`` (the models folder); SDXL ones too if asked."""
    for family in ("sd15", "sd21") + (("sdxl",) if sdxl else ()):
        build_base(root, family)
        build_controlnet(root, family)
    build_taesd(root)
    if sdxl:
        build_taesd(root, "taesdxl")
    build_lcm_lora(root)
    build_ip_adapter(root)
    return root
