DROP TABLE membership_events;
