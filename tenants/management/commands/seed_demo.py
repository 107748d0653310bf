from django.core.management.base import BaseCommand

from tenants.demo import demo_logins, demo_password, demo_seed


class Command(BaseCommand):
    help = ("Create the demo companies (AskProAI Demo Company, Bright Smile Dental), their agents and "
            "demo logins. What exists already is left untouched, so running it twice changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--print-login", action="store_true", help="Print the demo logins.")

    def handle(self, *args, print_login, **options):
        created = demo_seed()
        made = [f"{len(v)} {k}" for k, v in created.items() if v]
        self.stdout.write("Seeded: " + ", ".join(made) if made else "Demo data already present; nothing changed.")
        if print_login:
            password = demo_password()
            self.stdout.write("")
            self.stdout.write(self.style.SUCCESS("Admin: http://127.0.0.1:8000/admin/"))
            for username, what in demo_logins():
                self.stdout.write(f"  {username:<14} password {password}   ({what})")
