import sys
from pathlib import Path

# tests/zoo.py and the helper model modules are imported as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
