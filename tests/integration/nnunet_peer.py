"""Run nnU-Net v2's own fingerprint extractor and planners; executed with the peer venv's python (not by pytest).

    <peer-venv>/bin/python tests/integration/nnunet_peer.py job.json

``job.json``: ``{"raw": dir, "preprocessed": dir, "results": dir, "out": result.json, "num_processes": 2,
"fingerprint": [dataset ids], "plans": [[dataset id, planner class name], ...]}``. Datasets listed under "plans" but
not under "fingerprint" must already have ``<preprocessed>/<Dataset>/dataset_fingerprint.json``.
The result JSON holds, per dataset, the fingerprint and the plans of each planner, plus wall times.
"""
import json
import os
import sys
import time


def main(job_file: str) -> None:
    with open(job_file) as f:
        job = json.load(f)
    # nnU-Net reads its folders from the environment at import time
    os.environ["nnUNet_raw"] = job["raw"]
    os.environ["nnUNet_preprocessed"] = job["preprocessed"]
    os.environ["nnUNet_results"] = job["results"]
    t0 = time.time()
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
        nnUNetPlannerResEncL,
        nnUNetPlannerResEncM,
    )
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    planners = {"ExperimentPlanner": ExperimentPlanner, "nnUNetPlannerResEncM": nnUNetPlannerResEncM,
                "nnUNetPlannerResEncL": nnUNetPlannerResEncL}
    out = {"datasets": {}, "timings": {"import": time.time() - t0}}
    for ds in job.get("fingerprint", []):
        t = time.time()
        fp = DatasetFingerprintExtractor(ds, num_processes=int(job.get("num_processes", 2))).run(
            overwrite_existing=True)
        out["timings"][f"fingerprint_{ds}"] = time.time() - t
        out["datasets"].setdefault(str(ds), {})["fingerprint"] = json.loads(json.dumps(fp, default=float))
    for ds, planner in job.get("plans", []):
        t = time.time()
        name = maybe_convert_to_dataset_name(ds)
        plans = planners[planner](ds).plan_experiment()
        out["timings"][f"plan_{ds}_{planner}"] = time.time() - t
        entry = out["datasets"].setdefault(str(ds), {})
        entry.setdefault("plans", {})[planner] = plans
        entry["name"] = name
        fp_file = os.path.join(job["preprocessed"], name, "dataset_fingerprint.json")
        if "fingerprint" not in entry and os.path.isfile(fp_file):
            with open(fp_file) as f:
                entry["fingerprint"] = json.load(f)
    out["timings"]["total"] = time.time() - t0
    from importlib.metadata import version

    import nnunetv2  # noqa: F401

    out["nnunetv2_version"] = version("nnunetv2")
    with open(job["out"], "w") as f:
        json.dump(out, f, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


if __name__ == "__main__":
    main(sys.argv[1])
