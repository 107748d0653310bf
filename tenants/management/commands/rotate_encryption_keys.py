from django.core.management.base import BaseCommand, CommandError

from audit.actor import Actor
from tenants.crypto import SecretDecryptionError
from tenants.services import encryption_keys_rotate


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret under the first key of FIELD_ENCRYPTION_KEYS. "
            "Run it after putting a new key in front; drop the old key once it has finished.")

    def handle(self, *args, **options):
        try:
            count = encryption_keys_rotate(actor=Actor.system("manage.py rotate_encryption_keys"))
        except SecretDecryptionError as exc:
            raise CommandError(f"{exc} Nothing was changed: keep the old key configured and run again.") from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secrets under the newest key."))
