//! What a tab's component did with a key: the one answer every component
//! gives, so the session's loop treats them all alike.

/// The outcome of a key given to a component whose requests are `R`.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled<R> {
    /// Not one of its keys (the tab bar and help may take it).
    No,
    /// Taken; the component's own state changed, if at all.
    Yes,
    /// Taken; the session is asked to do `R` with shared data or the service.
    Ask(R),
    /// Taken; the status line says this.
    Notice(String),
}
