"""Test-suite wide settings (also seen by the notebook kernels nbval starts, through the environment)."""
import os
import tempfile

# Notebooks run by nbval write their results and figures here, not over the committed ones.
os.environ.setdefault("WSSS_OUT_DIR", tempfile.mkdtemp(prefix="wsss-nbval-"))
# nbval executes every notebook at the smoke profile: every cell runs, every figure is drawn, in seconds
# (the notebooks' validation cell applies it and prints one line saying so).
os.environ.setdefault("WSSS_PROFILE", "smoke")
# No test may try the network for pretrained weights.
os.environ.setdefault("WSSS_OFFLINE", "1")
