import os
import sys

# The package under test, straight from the tree.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
