"""``python -m active_learning.training``: ``scraiber train`` without the rest of the CLI (e.g. on a bare GPU box)."""

import logging

from active_learning.training.command import train_command

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    train_command(prog_name="python -m active_learning.training")
