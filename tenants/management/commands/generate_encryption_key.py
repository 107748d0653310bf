from django.core.management.base import BaseCommand

from tenants.crypto import new_key


class Command(BaseCommand):
    help = "Print a new key for FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        self.stdout.write(new_key())
