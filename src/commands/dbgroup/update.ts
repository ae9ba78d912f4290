import {makeUpdateCommand} from '../../cli/rules-commands.js'

export default makeUpdateCommand('dbgroup')
