"""What a run tells people: progress lines and bars, stats files, status, metrics, plots.

May import ``stylegan_common``; never ``model`` or ``train`` (they call into it).
"""
