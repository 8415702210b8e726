# No models: the tenant app's migrations are RunSQL (written by bench/bench.py).
