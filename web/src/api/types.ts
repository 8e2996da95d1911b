// The wire types, named once, all from the schema generated out of the server's OpenAPI
// document (`npm run gen`). Nothing here is written by hand.
import type { components } from './schema'

type Schemas = components['schemas']

export type ErrorBody = Schemas['ErrorBody']
export type Org = Schemas['Org']
export type Whoami = Schemas['Whoami']
export type Session = Schemas['Session']
export type App = Schemas['App']
export type AppSummary = Schemas['AppSummary']
export type AppHealth = AppSummary['state']
export type Env = Schemas['Env']
export type Release = Schemas['Release']
export type ReleaseListing = Schemas['ReleaseListing']
export type Deployment = Schemas['Deployment']
export type Instance = Schemas['Instance']
export type ProcessType = Schemas['ProcessType']
export type ProcessScaling = Schemas['ProcessScaling']
export type EnvStatus = Schemas['EnvStatus']
export type Route = Schemas['Route']
export type RoutePolicy = Schemas['RoutePolicy']
export type Domain = Schemas['DomainView']
export type Secret = Schemas['Secret']
export type Event = Schemas['PublicEvent']
export type Node = Schemas['Node']
export type Region = Schemas['Region']
export type LogLine = Schemas['LogLine']
