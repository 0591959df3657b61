"""Human feedback: a labeling page, a terminal labeler, a durable label store, and their export.

The loop, as ``textenv label ...`` runs it:

1. **Tasks**: a prompt and two completions (``LabelTask``), from a task file (``load_tasks``) or sampled from
   a model (``textenv label tasks``).
2. **Labels**: people pick the better completion (or a tie, or skip), optionally rate each on coherence,
   creativity, relevance and fluency (1–5) and leave a note, on the labeling page (``rewards.human.server``,
   needs the ``label`` extra: FastAPI and uvicorn) or in the terminal (``run_terminal``). Every label is a
   row of a SQLite database (``LabelStore``), committed before the labeler says "saved".
3. **Export and stats**: ``export_labels`` writes the pairwise and ratings JSONL that ``rewards.load_preferences``
   and ``rewards.train_reward_model`` read; ``compute_stats`` reports counts, Cohen's kappa where annotators
   overlap, and position bias.

``HumanReward`` is the smallest form of the loop: a person scores completions in the terminal while an env runs.
The server module is not imported here, so this package needs no web framework.
"""

from rewards.human.export import ExportResult, export_labels, export_records
from rewards.human.reward import HumanReward
from rewards.human.stats import AgreementStats, LabelStats, cohen_kappa, compute_stats
from rewards.human.store import DIMENSIONS, Label, LabelStore
from rewards.human.tasks import LabelTask, display_order, load_tasks, write_tasks
from rewards.human.terminal import run_terminal

__all__ = [
    "DIMENSIONS",
    "AgreementStats",
    "ExportResult",
    "HumanReward",
    "Label",
    "LabelStats",
    "LabelStore",
    "LabelTask",
    "cohen_kappa",
    "compute_stats",
    "display_order",
    "export_labels",
    "export_records",
    "load_tasks",
    "run_terminal",
    "write_tasks",
]
