//! [`Fields`]: which optional profile fields a replica keeps (data minimisation).

use std::{fmt, ops::BitOr};

/// Which optional profile fields a replica keeps (data minimisation).
///
/// The user id and version are always kept. Fields not kept are dropped
/// before anything reaches the store. The default keeps only the display name.
///
/// ```
/// use tessera_user_sync::store::Fields;
///
/// let kept = Fields::DISPLAY_NAME | Fields::AVATAR_URL;
/// assert!(kept.contains(Fields::AVATAR_URL));
/// assert!(!kept.contains(Fields::EMAIL));
/// assert_eq!(Fields::default(), Fields::DISPLAY_NAME);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fields(u8);

impl Fields {
    /// Only the user id and version.
    pub const NONE: Self = Self(0);
    /// `display_name`.
    pub const DISPLAY_NAME: Self = Self(1);
    /// `username`.
    pub const USERNAME: Self = Self(2);
    /// `email` (personal data: keep it only if the service needs it).
    pub const EMAIL: Self = Self(4);
    /// `avatar_url`.
    pub const AVATAR_URL: Self = Self(8);
    /// Every profile field.
    pub const ALL: Self = Self(15);

    /// Whether all of `other`'s fields are in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::DISPLAY_NAME
    }
}

impl BitOr for Fields {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::DISPLAY_NAME, "display_name"),
            (Self::USERNAME, "username"),
            (Self::EMAIL, "email"),
            (Self::AVATAR_URL, "avatar_url"),
        ];
        f.debug_set()
            .entries(
                names
                    .iter()
                    .filter(|(flag, _)| self.contains(*flag))
                    .map(|(_, n)| n),
            )
            .finish()
    }
}
