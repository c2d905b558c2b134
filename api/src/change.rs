//! The words the API uses for what a write did and what a watch saw,
//! shared by the server and its clients.

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It existed exactly so; nothing was written.
    Unchanged,
}

impl Outcome {
    /// kubectl's word: `created`, `configured`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// What a watch saw happen to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// It appeared (or started matching the watch's selector).
    Added,
    /// It changed.
    Modified,
    /// It went away (or stopped matching); the event carries it as it was.
    Deleted,
}

impl From<Outcome> for crate::grpc::v1::ApplyOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Created => Self::Created,
            Outcome::Configured => Self::Configured,
            Outcome::Unchanged => Self::Unchanged,
        }
    }
}

impl TryFrom<crate::grpc::v1::ApplyOutcome> for Outcome {
    type Error = ();
    fn try_from(o: crate::grpc::v1::ApplyOutcome) -> Result<Self, ()> {
        use crate::grpc::v1::ApplyOutcome as W;
        match o {
            W::Created => Ok(Outcome::Created),
            W::Configured => Ok(Outcome::Configured),
            W::Unchanged => Ok(Outcome::Unchanged),
            W::Unspecified => Err(()),
        }
    }
}

impl From<EventType> for crate::grpc::v1::EventType {
    fn from(e: EventType) -> Self {
        match e {
            EventType::Added => Self::Added,
            EventType::Modified => Self::Modified,
            EventType::Deleted => Self::Deleted,
        }
    }
}

impl TryFrom<crate::grpc::v1::EventType> for EventType {
    type Error = ();
    fn try_from(e: crate::grpc::v1::EventType) -> Result<Self, ()> {
        use crate::grpc::v1::EventType as W;
        match e {
            W::Added => Ok(EventType::Added),
            W::Modified => Ok(EventType::Modified),
            W::Deleted => Ok(EventType::Deleted),
            W::Unspecified => Err(()),
        }
    }
}
