"""`python -m model.checkpoint latest RUN_DIR`: which checkpoint a run resumes from (slurm/pretrain.sh asks)."""
import sys

from model.checkpoint.manager import main

sys.exit(main())
