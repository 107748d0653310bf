"""The custom functions the receptionist offers, as Retell custom-tool specs.

One definition serves three places: the demo companies' CustomFunction rows (and
what is deployed to Retell), the argument validation of the custom-function
endpoint, and the tools of the live-call dialog engine. The handlers that run them
are in appointments.handlers.
"""

APPOINTMENT_ID = ("The appointment_id that an earlier result in this call gave for this appointment (e.g. after "
                  "booking or moving it), to %s exactly that one; name, phone and date are then not needed. "
                  "Omit it when no result named the appointment.")

COLLECT_APPOINTMENT_INFORMATION = {
    "name": "collect_appointment_information",
    "description": "Books an appointment once the caller has given their name, the date and the time "
                   "(and, where known, the service and a phone number). Call it after the caller "
                   "confirmed the details. The result says whether the slot was free or offers alternatives.",
    "parameters": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Customer name"},
            "date": {"type": "string", "description": "Appointment date as said or ISO, e.g. 'tomorrow', "
                                                      "'morgen', '2026-11-24'"},
            "time": {"type": "string", "description": "Appointment time as said or HH:MM, e.g. '10 am', '14:30'"},
            "service": {"type": "string", "description": "Service requested, e.g. 'cleaning'"},
            "phone": {"type": "string", "description": "Callback number; the caller's number if not given"},
        },
        "required": ["name", "date", "time"],
    },
}

CHECK_AVAILABILITY = {
    "name": "check_availability",
    "description": "Tells whether a date (and optionally a time) is free for a service, and the nearest "
                   "free times otherwise.",
    "parameters": {
        "type": "object",
        "properties": {
            "date": {"type": "string", "description": "Date as said or ISO"},
            "time": {"type": "string", "description": "Time as said or HH:MM; omit for the whole day"},
            "service": {"type": "string", "description": "Service, if the caller named one"},
        },
        "required": ["date"],
    },
}

CHANGE_APPOINTMENT_DETAILS = {
    "name": "change_appointment_details",
    "description": "Moves the caller's existing appointment to a new date and time. The appointment is "
                   "found by its appointment_id when a result of this call gave one, else by phone number "
                   "(the caller's by default) or by name, and the current date when the caller has several.",
    "parameters": {
        "type": "object",
        "properties": {
            "appointment_id": {"type": "integer", "description": APPOINTMENT_ID % "move"},
            "name": {"type": "string", "description": "Name the appointment is under"},
            "phone": {"type": "string", "description": "Phone number the appointment is under"},
            "current_date": {"type": "string", "description": "Date of the appointment to move, if known"},
            "new_date": {"type": "string", "description": "New date as said or ISO"},
            "new_time": {"type": "string", "description": "New time as said or HH:MM"},
        },
        "required": ["new_date", "new_time"],
    },
}

CANCEL_APPOINTMENT = {
    "name": "cancel_appointment",
    "description": "Cancels the caller's appointment, found by its appointment_id when a result of this call "
                   "gave one, else by phone number (the caller's by default) or by name, and the date when "
                   "the caller has several.",
    "parameters": {
        "type": "object",
        "properties": {
            "appointment_id": {"type": "integer", "description": APPOINTMENT_ID % "cancel"},
            "name": {"type": "string", "description": "Name the appointment is under"},
            "phone": {"type": "string", "description": "Phone number the appointment is under"},
            "date": {"type": "string", "description": "Date of the appointment, if the caller has several"},
        },
        "required": [],
    },
}

FUNCTION_SPECS = {spec["name"]: spec for spec in (
    COLLECT_APPOINTMENT_INFORMATION, CHECK_AVAILABILITY, CHANGE_APPOINTMENT_DETAILS, CANCEL_APPOINTMENT)}
