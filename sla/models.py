# Business calendars, SLA policies and escalations arrive with the SLA work.
