//! jotasu's object model.
