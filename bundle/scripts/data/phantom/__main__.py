"""``python -m scripts.data.phantom case|dataset ...`` (see the package docstring)."""
import fire

from .dataset import _case_cli, make_dataset

if __name__ == "__main__":
    fire.Fire({"case": _case_cli, "dataset": make_dataset})
