# web_search only during working hours: Monday to Friday, 09:00 to 18:00
# in one time zone (the zone database is built into the binary, so this
# works on machines without /usr/share/zoneinfo).
package mcp.tools

search_hours := {"zone": "Europe/Berlin", "from": 9, "until": 18, "days": {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}}

search_now := [time.now_ns(), search_hours.zone]

# METADATA
# title: Web search in working hours
# description: Denies web_search outside 09:00-18:00, Monday to Friday, Europe/Berlin.
# scope: rule
deny contains sprintf(
	"web_search is allowed %d:00-%d:00 %s, Monday to Friday (now %s %02d:%02d)",
	[search_hours.from, search_hours.until, search_hours.zone, day, hour, minute],
) if {
	input.tool == "web_search"
	day := time.weekday(search_now)
	[hour, minute, _] := time.clock(search_now)
	not search_open(search_hours, day, hour)
}

search_open(hours, day, hour) if {
	day in hours.days
	hour >= hours.from
	hour < hours.until
}
