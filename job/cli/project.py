"""Where the project's checkout is, for the tools and local runs (not shipped to MSF: in
the zip, job/msf_main.py finds its code beside itself)."""
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
