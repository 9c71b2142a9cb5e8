#!/usr/bin/env python3
"""Remove ipywidgets' saved state from notebooks, keeping every static output.

    python tools/strip_widgets.py notebooks/*.ipynb

A widget saved in a notebook is only a reference to state that lives in the running kernel:
without a kernel (GitHub, the course site, nbconvert to HTML) it shows as a broken box. The
committed lessons therefore keep the static outputs (figures, text) of their interactive cells
and drop the widget views and the notebook's widget-state metadata.
"""
import json
import sys

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip(notebook):
    """Drop widget views and widget state from a notebook dict, in place; return the count removed."""
    removed = int(notebook.get("metadata", {}).pop("widgets", None) is not None)
    for cell in notebook["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                removed += 1
                continue  # its text/plain is only a repr such as "VBox(children=...)"
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return removed


def main(paths):
    for path in paths:
        with open(path) as f:
            notebook = json.load(f)
        if strip(notebook):
            with open(path, "w") as f:
                json.dump(notebook, f, indent=1, ensure_ascii=False)
                f.write("\n")
            print(f"{path}: widget state removed")


if __name__ == "__main__":
    main(sys.argv[1:])
