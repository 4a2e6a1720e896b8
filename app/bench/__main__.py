"""``python -m app.bench``: the benchmark with all of its options."""

import sys

from app.bench import main

sys.exit(main())
