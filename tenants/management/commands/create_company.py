from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from audit.actor import Actor
from tenants.services import company_create
from tenants.validators import normalize_e164


class Command(BaseCommand):
    help = "Create a company (a tenant)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", help="Defaults to the name, slugified.")
        parser.add_argument("--timezone", default="Europe/Berlin", help="IANA zone, e.g. America/New_York.")
        parser.add_argument("--language", default="de", choices=["de", "en"])
        parser.add_argument("--phone", default="", help="The practice's number; spaces are fine.")
        parser.add_argument("--address", default="")

    def handle(self, *args, name, slug, timezone, language, phone, address, **options):
        try:
            company = company_create(
                actor=Actor.system("manage.py create_company"), name=name, slug=slug or slugify(name),
                timezone=timezone, language=language, phone=normalize_e164(phone) if phone else "",
                address=address)
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Created company {company.name} (slug {company.slug}, id {company.pk})."))


def _describe(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
