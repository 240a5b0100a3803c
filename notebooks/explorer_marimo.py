import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")


@app.cell
def _():
    import os
    from pathlib import Path

    import marimo as mo
    import torch

    import hierx_nb

    # Exported files go to $HIERX_OUT when set, else to out/ next to this notebook (gitignored).
    OUT = Path(os.environ.get("HIERX_OUT", "out"))
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT, hierx_nb, mo, torch


@app.cell
def _(torch):
    class Scorer(torch.nn.Module):
        """A small model; one submodule is named with markup, which the explorer shows as text."""

        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32))
            self.add_module("<b>evil</b>", torch.nn.Linear(32, 4))

        def forward(self, x):
            return getattr(self, "<b>evil</b>")(self.body(x)).softmax(-1)

    torch.manual_seed(0)
    model = Scorer().eval()
    return (model,)


@app.cell
def _(OUT, hierx_nb, model, torch):
    result = hierx_nb.export(model, (torch.randn(2, 16),), output=OUT / "marimo_scorer.onnx")
    return (result,)


@app.cell
def _(mo, result):
    # The same anywidget explorer as in Jupyter; marimo wraps it as a UI element.
    explorer = mo.ui.anywidget(result.widget)
    explorer  # noqa: B018 (marimo shows a cell's last expression)
    return (explorer,)


@app.cell
def _(explorer, result):
    # Re-runs when the selection changes in the explorer above.
    explorer.value  # noqa: B018 (a dependency: this cell re-runs when the selection changes)
    result.selection  # noqa: B018
    return


if __name__ == "__main__":
    app.run()
