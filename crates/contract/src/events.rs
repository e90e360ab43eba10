//! The events of docs/API.md ("Events"): one Rust type per record, enum and variant of
//! `wit/events.wit`, generated into `events/generated.rs` by `cargo xtask codegen`, and
//! the trait that ties each subject's data to its case of [`Event`].

mod generated;

pub use generated::*;

/// The data of one subject: the generated record of each case of `event`.
pub trait EventData: Sized {
    /// The Redis channel (and, prefixed with `events:`, the stream) it travels on.
    const SUBJECT: &'static str;
    fn into_event(self) -> Event;
    fn from_event(event: Event) -> Option<Self>;
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::Price;

    fn cents(cents: i64) -> Price {
        Price::from_cents(cents).unwrap()
    }

    fn envelope(event: Event) -> Envelope {
        Envelope {
            id: "e1".into(),
            occurred_at: "2026-11-23T10:15:00.000Z".into(),
            source: "tickets".into(),
            event,
            traceparent: None,
            tracestate: None,
        }
    }

    #[test]
    fn the_envelope_is_flat_with_subject_and_data() {
        let data = TicketCreated {
            id: "t1".into(),
            version: 0,
            title: "concert".into(),
            price: cents(2050),
            user_id: "u1".into(),
        };
        let event = envelope(Event::TicketCreated(data.clone()));
        let json: Value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            json!({
                "id": "e1",
                "occurredAt": "2026-11-23T10:15:00.000Z",
                "source": "tickets",
                "subject": "ticket:created",
                "data": {"id": "t1", "version": 0, "title": "concert", "price": 20.5, "userId": "u1"}
            })
        );
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        // Whole dollars are written as a float, as events always have been.
        let whole = envelope(Event::TicketCreated(TicketCreated {
            price: cents(2000),
            ..data
        }));
        let text = serde_json::to_string(&whole).unwrap();
        assert!(text.contains(r#""price":20.0,"#), "{text}");
    }

    #[test]
    fn the_trace_context_is_top_level_and_optional() {
        let traced = Envelope {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: Some("congo=t61rcWkgMzE".into()),
            ..envelope(Event::ExpirationComplete(ExpirationComplete {
                order_id: "o1".into(),
            }))
        };
        let json: Value = serde_json::to_value(&traced).unwrap();
        assert_eq!(
            json["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(json["tracestate"], "congo=t61rcWkgMzE");
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), traced);
        // Without one, nothing is written, and an envelope without one reads.
        let plain = envelope(Event::ExpirationComplete(ExpirationComplete {
            order_id: "o1".into(),
        }));
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("traceparent").is_none() && json.get("tracestate").is_none());
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), plain);
    }

    #[test]
    fn an_absent_order_id_is_omitted_and_may_be_missing() {
        let updated = TicketUpdated {
            id: "t1".into(),
            version: 1,
            title: "concert".into(),
            price: cents(2000),
            user_id: "u1".into(),
            order_id: None,
        };
        let json = serde_json::to_value(&updated).unwrap();
        assert!(json.get("orderId").is_none(), "{json}");
        let with_order = TicketUpdated {
            order_id: Some("o1".into()),
            ..updated.clone()
        };
        assert_eq!(serde_json::to_value(&with_order).unwrap()["orderId"], "o1");
        let back: TicketUpdated = serde_json::from_value(json).unwrap();
        assert_eq!(back, updated);
    }

    #[test]
    fn order_events_spell_fields_and_statuses_as_api_md() {
        let created = envelope(Event::OrderCreated(OrderCreated {
            id: "o1".into(),
            version: 0,
            status: OrderStatus::AwaitingPayment,
            user_id: "u1".into(),
            expires_at: "2026-11-23T10:30:00.000Z".into(),
            ticket: OrderedTicket {
                id: "t1".into(),
                price: cents(1000),
            },
        }));
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["subject"], "order:created");
        assert_eq!(json["data"]["status"], "awaiting:payment");
        assert_eq!(json["data"]["expiresAt"], "2026-11-23T10:30:00.000Z");
        assert_eq!(json["data"]["ticket"], json!({"id": "t1", "price": 10.0}));
        let expired =
            serde_json::to_value(envelope(Event::ExpirationComplete(ExpirationComplete {
                order_id: "o1".into(),
            })))
            .unwrap();
        assert_eq!(expired["subject"], "expiration:complete");
        assert_eq!(expired["data"], json!({"orderId": "o1"}));
    }

    #[test]
    fn each_subject_is_named_once() {
        assert_eq!(SUBJECTS.len(), 6);
        assert_eq!(OrderCancelled::SUBJECT, "order:cancelled");
        let event = PaymentCreated {
            id: "p1".into(),
            order_id: "o1".into(),
            stripe_id: "ch_1".into(),
        }
        .into_event();
        assert_eq!(event.subject(), "payment:created");
        assert!(PaymentCreated::from_event(event.clone()).is_some());
        assert!(TicketCreated::from_event(event).is_none());
    }

    #[test]
    fn envelopes_of_unknown_subjects_or_wrong_data_do_not_parse() {
        let unknown = json!({"id": "e", "occurredAt": "t", "source": "s", "subject": "ticket:deleted", "data": {}});
        assert!(serde_json::from_value::<Envelope>(unknown).is_err());
        let wrong = json!({"id": "e", "occurredAt": "t", "source": "s", "subject": "ticket:created", "data": {"id": 1}});
        assert!(serde_json::from_value::<Envelope>(wrong).is_err());
    }
}
