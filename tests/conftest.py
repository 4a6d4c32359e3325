import os
import sys

# tests import the helpers in this folder (nslib) by name
sys.path.insert(0, os.path.dirname(__file__))
