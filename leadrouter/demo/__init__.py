"""The demo organisation: a realistic coverage model for trying the product.

``coverage.yaml`` is made by ``generate.py``; ``loader.py`` imports it and sets
up the demo logins (``manage.py load_demo``).
"""
