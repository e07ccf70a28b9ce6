//! Conversions between the wire enums and the domain types every service shares. Service-specific
//! conversions live in each service's gRPC layer.

use hazchem_domain::Department;

use crate::v1;

impl From<Department> for v1::Department {
    fn from(d: Department) -> Self {
        match d {
            Department::Miit => Self::Miit,
            Department::Psb => Self::Psb,
            Department::Eeb => Self::Eeb,
            Department::Transport => Self::Transport,
            Department::Emergency => Self::Emergency,
            Department::Samr => Self::Samr,
            Department::Approval => Self::Approval,
            Department::Msa => Self::Msa,
            Department::Fire => Self::Fire,
        }
    }
}

/// The wire value names no department (`DEPARTMENT_UNSPECIFIED` or a number this build does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownDepartment(pub i32);

impl std::fmt::Display for UnknownDepartment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "department {} is not one of the nine departments",
            self.0
        )
    }
}

impl std::error::Error for UnknownDepartment {}

impl TryFrom<v1::Department> for Department {
    type Error = UnknownDepartment;

    fn try_from(d: v1::Department) -> Result<Self, Self::Error> {
        Ok(match d {
            v1::Department::Unspecified => return Err(UnknownDepartment(0)),
            v1::Department::Miit => Self::Miit,
            v1::Department::Psb => Self::Psb,
            v1::Department::Eeb => Self::Eeb,
            v1::Department::Transport => Self::Transport,
            v1::Department::Emergency => Self::Emergency,
            v1::Department::Samr => Self::Samr,
            v1::Department::Approval => Self::Approval,
            v1::Department::Msa => Self::Msa,
            v1::Department::Fire => Self::Fire,
        })
    }
}

/// Reads a department from its wire number (as prost stores enum fields).
pub fn department_from_i32(value: i32) -> Result<Department, UnknownDepartment> {
    v1::Department::try_from(value)
        .map_err(|_| UnknownDepartment(value))
        .and_then(Department::try_from)
        .map_err(|_| UnknownDepartment(value))
}

impl v1::Publisher {
    /// The publisher's token, as in the event's subject (`hazchem.ev.<token>...`): a department's code or
    /// a service's name; `None` when the record names no valid publisher.
    pub fn token(&self) -> Option<String> {
        match self.principal.as_ref()? {
            v1::publisher::Principal::Department(d) => {
                department_from_i32(*d).ok().map(|d| d.code().to_owned())
            }
            v1::publisher::Principal::Service(name) => Some(name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_department_round_trips_through_the_wire_enum() {
        for d in Department::ALL {
            let wire = v1::Department::from(d);
            assert_eq!(Department::try_from(wire), Ok(d));
            assert_eq!(department_from_i32(wire as i32), Ok(d));
            let publisher = v1::Publisher {
                principal: Some(v1::publisher::Principal::Department(wire as i32)),
            };
            assert_eq!(publisher.token().as_deref(), Some(d.code()));
            // The wire name carries the code: DEPARTMENT_EMERGENCY ↔ emergency.
            assert_eq!(
                wire.as_str_name(),
                format!("DEPARTMENT_{}", d.code().to_uppercase())
            );
        }
        assert_eq!(department_from_i32(0), Err(UnknownDepartment(0)));
        assert_eq!(department_from_i32(42), Err(UnknownDepartment(42)));
    }
}
