"""W&B tracking, offline: the run directory must hold the val/bleu history, the table and the images."""

import json
import struct

from tests.conftest import REPO, run_nmt


def read_wandb_log(path):
    """Records of a ``run-*.wandb`` file: a LevelDB-style log (32 KiB blocks, 7-byte record headers)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos = path.read_bytes(), 32768, 7  # 7-byte W&B file header
    assert data[:4] == b":W&B"
    records, parts = [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


def test_offline_run_holds_metrics_table_and_images(tiny_runs, tmp_path):
    result = run_nmt(
        "fit", *tiny_runs.args("transformer"),
        "--config", str(REPO / "configs/logger/wandb.yaml"),
        "--trainer.default_root_dir", str(tmp_path / "R"),
        cwd=tmp_path, env={"WANDB_MODE": "offline"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history = []
    for record in read_wandb_log(next(runs[0].glob("run-*.wandb"))):
        if record.WhichOneof("record_type") == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
    bleu = [h["val/bleu"] for h in history if "val/bleu" in h]
    assert len(bleu) == 2 and all(0.0 <= b <= 100.0 for b in bleu)  # two validations
    assert any("train/loss" in h for h in history)
    media = runs[0] / "files" / "media"
    assert len(list((media / "images" / "val").glob("attention_*.png"))) == 4  # 2 plots x 2 validations
    table = json.loads(next((media / "table" / "val").glob("samples_*.table.json")).read_text())
    assert table["columns"] == ["source", "reference", "hypothesis"] and len(table["data"]) == 2
