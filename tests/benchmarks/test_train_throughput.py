"""benchmarks/train_throughput.py: one real (tiny) timing per memory format, the record's fields, and --merge."""
import json

from benchmarks import train_throughput as tt


def test_tiny_run_times_each_mode_and_merge_keeps_the_other_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(tt, "RECIPES", {"tiny": ([2.0, 2.0, 2.0], [32, 32, 32])})
    out = tmp_path / "throughput.json"
    rows = tt.run(networks="unet3d", recipes="tiny", modes="channels_first,channels_last", steps=1, num_samples=1,
                  data=False, out=str(out))
    assert [r["mode"] for r in rows] == ["channels_first", "channels_last"]
    for r in rows:
        assert r["s_per_step"] > 0 and abs(r["steps_per_s"] - 1 / r["s_per_step"]) < 0.01 * r["steps_per_s"] + 1e-3
        assert r["mvoxels_per_s"] > 0 and r["patch"] == [32, 32, 32] and "measured" in r
    first = json.loads(out.read_text())["rows"]
    tt.run(networks="unet3d", recipes="tiny", modes="channels_last", steps=1, num_samples=1, data=False, out=str(out),
           merge=True)
    merged = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in merged] == ["channels_first", "channels_last"]
    assert merged[0] == first[0] and merged[1]["measured"] >= first[1]["measured"]
    tt.run(networks="unet3d", recipes="tiny", modes="channels_last", steps=1, num_samples=1, data=False, out=str(out))
    assert [r["mode"] for r in json.loads(out.read_text())["rows"]] == ["channels_last"]   # no merge: this run only
