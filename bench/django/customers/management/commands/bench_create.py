import time

from django.core.management.base import BaseCommand

from customers.models import Client


class Command(BaseCommand):
    help = "Creates N tenants (save() with auto_create_schema), printing each one's seconds."

    def add_arguments(self, parser):
        parser.add_argument("n", type=int)

    def handle(self, *args, **options):
        start = Client.objects.count()
        times = []
        for i in range(start, start + options["n"]):
            t0 = time.perf_counter()
            Client(schema_name=f"dj_{i}", name=f"tenant {i}").save(verbosity=0)
            times.append(time.perf_counter() - t0)
        self.stdout.write(" ".join(f"{t:.6f}" for t in times))
