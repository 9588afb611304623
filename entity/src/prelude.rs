//! Entity types under short names: `use entity::prelude::*;`.

pub use super::anonymous_page_view::Entity as AnonymousPageView;
pub use super::anonymous_session::Entity as AnonymousSession;
pub use super::community::Entity as Community;
pub use super::page_analytics::Entity as PageAnalytics;
pub use super::page_view_log::Entity as PageViewLog;
pub use super::user_event::Entity as UserEvent;
pub use super::user_profile::Entity as UserProfile;
pub use super::user_session::Entity as UserSession;
