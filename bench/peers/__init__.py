"""``python -m bench.peers`` (``make bench-peers``): flowengine side by side with n8n.

Optional and never part of CI: it installs n8n and a Node.js it can run on from the npm registry
into a cache folder (``install``), starts both servers on 127.0.0.1, gives them equivalent
workflows (``workflows``) and measures them in the same run with the same load generator
(``measure``), reading each server's whole process tree from /proc (``proctree``).
"""
