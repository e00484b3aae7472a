"""Test-suite wide settings (also seen by the notebook kernels nbval starts, through the environment)."""
import os
import tempfile

# Notebooks run by nbval write their results and figures here, not over the committed ones.
os.environ.setdefault("WSSS_OUT_DIR", tempfile.mkdtemp(prefix="wsss-nbval-"))
# No test may try the network for pretrained weights.
os.environ.setdefault("WSSS_OFFLINE", "1")
