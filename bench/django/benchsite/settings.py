# The peer for bench/bench.py: a minimal django-tenants site whose tenant app's migrations are
# RunSQL of the very same statements pg_tenancy runs (written by bench.py).
import os

SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": os.environ["BENCH_DB"],
        "USER": "postgres",
        "HOST": os.environ["BENCH_HOST"],
        "PORT": os.environ["BENCH_PORT"],
    }
}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
SHARED_APPS = ("django_tenants", "customers", "django.contrib.contenttypes")
TENANT_APPS = ("tenantapp",)
INSTALLED_APPS = list(SHARED_APPS) + [a for a in TENANT_APPS if a not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
TENANT_MULTIPROCESSING_MAX_PROCESSES = 2
MIDDLEWARE = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
