"""Build the starting point of the pruning experiment (assets/recipes/prune_small_wavlm.sh).

A small WavLM (random weights: no pretrained ones are reachable here) is added to the shipped
default model as an SSL front end, combined by addition through a projection that starts at zero,
so training starts from the default model's outputs and learns to use the SSL features.

    python assets/recipes/prune_small_wavlm.py WORK_DIR [SSL_FOLDER]  ->  WORK_DIR/init

SSL_FOLDER: a local transformers SSL model (e.g. a downloaded microsoft/wavlm-base-plus) to use
instead of the small random WavLM (written to WORK_DIR/wavlm-small).
"""

import shutil
import sys
from pathlib import Path

import torch
import transformers

from core.models import ToTaToNet, ToTaToNetConfig, count_parameters, load_model

ROOT = Path(__file__).resolve().parents[2]


def main(work: Path, ssl_folder: Path | None = None) -> None:
    torch.manual_seed(0)
    transformers.logging.disable_progress_bar()
    if ssl_folder is None:
        # WavLM Base's layout (7 conv layers, 320x down-sampling to 50 Hz), narrower and shallower
        wavlm = transformers.WavLMModel(transformers.WavLMConfig(
            hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
            conv_dim=(128,) * 7, conv_bias=False, num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16,
            num_buckets=160, max_bucket_distance=800))
        ssl_folder = work / "wavlm-small"
        wavlm.save_pretrained(ssl_folder)

    default = ROOT / "assets" / "models" / "default"
    base = load_model(default)
    config = ToTaToNetConfig(**{**base.config.__dict__, "ssl": {
        "name_or_path": str(ssl_folder), "layers": "weighted", "frozen": False,
        "proj_dim": base.config.n_filters, "combine": "add"}})
    net = ToTaToNet(config)
    missing, unexpected = net.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("ssl") for k in missing), (missing, unexpected)
    with torch.no_grad():  # start exactly at the default model: the SSL branch adds zero
        net.ssl_proj.weight.zero_()
        net.ssl_proj.bias.zero_()
    net.save(work / "init")
    shutil.copy(default / "params.json", work / "init" / "params.json")
    print(f"init: {count_parameters(net):,} parameters, {count_parameters(net.ssl.model):,} in the SSL front end")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else None)
