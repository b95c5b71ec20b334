"""TensorBoard as a reader of a run sees it: evaluation metrics under one `eval/` prefix, training metrics under
`train/`, and the resolved config as text and hparams (read back with TensorBoard's own EventAccumulator)."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from model.config import load_config, save_config
from model.evaluation import HELLASWAG_METRIC
from model.metrics import MetricsLogger


def test_eval_prefix_and_recorded_config(tmp_path):
    config = load_config("tiny-cpu", ["optim.lr=1e-3"])
    save_config(config, tmp_path)  # what the trainer writes before it opens the logger
    logger = MetricsLogger(tmp_path, enabled=True, tensorboard=True, plot_every=0, resumed_step=0)
    logger.log({"step": 1, "loss": 10.5, "lr": 1e-3, "tokens_per_s": 100.0})
    logger.log({"step": 2, "val_loss": 9.5, "val_bpb": 3.2, HELLASWAG_METRIC: 0.25})
    logger.close()

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"eval/val_loss", "eval/val_bpb", f"eval/{HELLASWAG_METRIC}"} <= scalars
    assert {"train/loss", "train/lr", "train/tokens_per_s"} <= scalars
    assert not any(tag.startswith("val/") or tag == f"train/{HELLASWAG_METRIC}" for tag in scalars)

    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "lr: 0.001" in text and "name: tiny" in text
    content = events.summary_metadata["_hparams_/session_start_info"].plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["optim.lr"].number_value == 1e-3 and hparams["model.name"].string_value == "tiny"
