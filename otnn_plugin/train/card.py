"""Model cards for registry folders: what the model is, how it was trained, its scores, its licence."""
from __future__ import annotations

import json

import timm
import yaml

from ..data.transforms import AUGMENTATIONS
from .recipe import Recipe
from .trainer import TrainingSetup, TrainResult

__all__ = ["model_card"]

_LICENCE = {
    "celeba": "Weights derived from CelebA: **non-commercial research use only** (CelebA agreement). Code: MIT.",
    "fashion_mnist": "MIT (Fashion-MNIST is MIT-licensed).",
    "snowflake": "MIT (synthetic data).",
    "imagefolder": "Weights derived from the image tree trained on: its terms apply (ImageNet's: non-commercial "
                   "research use only). Code: MIT.",
}


def _scores_table(scores: dict) -> str:
    rows = [f"| {key} | {value:.4f} |" for key, value in scores.items() if isinstance(value, float)]
    rows += [f"| certified accuracy, L2 radius {r} | {v:.4f} |" for r, v in scores.get("certified_accuracy", {}).items()]
    return "| score (test split) | value |\n|---|---|\n" + "\n".join(rows)


def _diagnostics_table(diagnostics: dict) -> str:
    """The transport-regime figures of :mod:`otnn_plugin.diagnostics`, each with what it means."""
    rows = [
        ("mean ‖grad f‖ of the explained head(s)", "mean_grad_norm", "1 at the hKR optimum (Prop. 1)"),
        ("Prop. 2 ratio, median \\|f(x')\\| / \\|f(x)\\|, x' = x - f(x) grad f(x)", "prop2_ratio", "0 at the optimum"),
        ("Taylor error between two test images (median)", "taylor_error", "0 for a linear model"),
        ("gradient cosine within a class (mean)", "gradient_cosine", "1 for a linear model"),
    ]
    table = "| diagnostic (test split, first {} images) | value | reference |\n|---|---|---|\n".format(
        diagnostics["samples"])
    table += "\n".join(f"| {label} | {diagnostics[key]:.4f} | {ref} |" for label, key, ref in rows)
    if "prop2_ratio_per_head" in diagnostics:
        table += "\n\nProp. 2 ratio per label head: " + ", ".join(f"{v:.3f}" for v in diagnostics["prop2_ratio_per_head"])
    return table


def _optimiser(recipe: Recipe) -> str:
    """The optimiser as the card names it: the paper's Adam, or AdamW where the recipe decays weights."""
    if recipe.weight_decay:
        return f"AdamW lr {recipe.lr} weight decay {recipe.weight_decay}"
    return f"Adam lr {recipe.lr}"


def _architecture(model: str) -> str:
    """The first paragraph of the timm entrypoint's docstring, which says which paper table (if any) it follows."""
    doc = (timm.models.model_entrypoint(model).__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split()).replace("``", "`").rstrip(".") or "paper arXiv:2206.06854"


def model_card(name: str, prepared: TrainingSetup, result: TrainResult, command: str, log: list[dict],
               diagnostics: dict) -> str:
    """The ``README.md`` of a registry folder, with the hub's YAML header."""
    recipe, environment = prepared.recipe, log[0]["environment"]
    header = {"library_name": "timm", "tags": ["image-classification", "timm", "lipschitz", "otnn"],
              "license": "other" if recipe.dataset in ("celeba", "imagefolder") else "mit",
              "datasets": [recipe.dataset]}
    per_label = ""
    if "sensitivity" in result.scores:
        from ..labels import CELEBA_ATTRIBUTES, CELEBA_PAPER_ATTRIBUTES

        names = CELEBA_ATTRIBUTES if len(result.scores["sensitivity"]) == 40 else CELEBA_PAPER_ATTRIBUTES
        per_label = "\n\n| label | sensitivity | specificity |\n|---|---|---|\n" + "\n".join(
            f"| {n} | {s:.2f} | {p:.2f} |"
            for n, s, p in zip(names, result.scores["sensitivity"], result.scores["specificity"])
        )
    epochs = "\n".join(json.dumps({k: v for k, v in line.items() if k != "test"}) for line in log[1:])
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---
# {name}

{recipe.description or recipe.model}

Architecture `{recipe.model}` from otnn-plugin ({_architecture(recipe.model)}), trained with
`{recipe.loss}` {recipe.loss_args or ''} for {recipe.epochs} epochs, {_optimiser(recipe)}, batch {recipe.batch_size}.

```python
import timm, otnn_plugin
model = timm.create_model("{name}", pretrained=True)   # hub when reachable, else registry/{name}
```

## Training

- Data: `{recipe.dataset}`{f' {recipe.dataset_args}' if recipe.dataset_args else ''}, {log[0]['train_size']} training and {log[0]['test_size']}
  test images{', augmented: ' + AUGMENTATIONS[recipe.dataset].summary if recipe.augment else ''}.
- Time: {result.seconds / 60:.1f} min on {environment['device']} ({environment['device_name']},
  {environment['threads']} threads), torch {environment['torch']}, timm {environment['timm']}.
- Command: `{command}`

Recipe:

```yaml
{yaml.safe_dump(recipe.to_dict(), sort_keys=False).strip()}
```

## Scores

{_scores_table(result.scores)}{per_label}

## Transport regime (`otnn_plugin.diagnostics`)

{_diagnostics_table(diagnostics)}

Per-epoch log (without the test scores):

```
{epochs}
```

## Licence

{_LICENCE.get(recipe.dataset, 'MIT')}
"""
